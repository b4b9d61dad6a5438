"""API plumbing every app's views use: the envelope, renderer, parser, fields, the throttle
base and the exception handler that maps ``core.exceptions.ApplicationError``."""
