"""The world around the box: simulated field devices and everything else the appliance talks to."""
