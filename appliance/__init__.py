"""The appliance runtime: configuration, services, store, web status page."""
