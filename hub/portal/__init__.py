"""The member portal: server-rendered pages where members sign in, see their points, decide on consent, read
who accessed their data, export it and erase their account; and the OAuth consent screen."""
