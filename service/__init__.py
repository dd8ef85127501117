"""The mdsdx service: the Flask application and its storage (the ``mdsdx`` command line is in :mod:`cli`)."""
