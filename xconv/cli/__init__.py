"""The ``xconv`` command line: parse, call the library, print. Nothing else lives here."""
