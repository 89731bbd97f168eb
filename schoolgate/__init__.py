"""schoolgate: a web filtering and access-control gateway for UK primary schools."""

__version__ = "0.1.0.dev0"
