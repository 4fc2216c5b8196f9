"""Field protocols: Modbus, serial line sensors and camera frame sources."""
