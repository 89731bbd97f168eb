"""mitmproxy addons of the schoolgate gateway; `proxy_addons.main.addons` is the ordered list."""
