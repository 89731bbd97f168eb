"""One module per `schoolgate` sub-command; each exposes `register(subparsers)`."""
