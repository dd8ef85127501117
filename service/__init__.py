"""The mdsdx service: the Flask application, its storage, and the ``mdsdx`` command line."""
