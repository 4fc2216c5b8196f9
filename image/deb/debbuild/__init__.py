"""`image/deb/build`: the appliance as a .deb for boxes that keep their vendor OS (docs/install-deb.md)."""
