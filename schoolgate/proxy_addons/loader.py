"""The file given to `mitmdump -s`: it only imports the installed addon list.

mitmproxy hot-reloads `-s` scripts when their file changes; keeping the code in the package and
this file constant means nothing reloads behind the running gateway's back.
"""

from schoolgate.proxy_addons.main import addons

__all__ = ["addons"]
