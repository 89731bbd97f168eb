"""mitmproxy addons of the schoolgate gateway; `schoolgate.proxy_addons.main.addons` is the ordered list."""
