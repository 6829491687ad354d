"""hub: a GraphQL partner-integration hub for pharmacy membership coalitions."""

__version__ = "0.1.0"
