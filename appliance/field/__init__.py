"""The field side: Modbus pollers, RTU bus services, serial sensors, derived channels, the latest value
of each channel (the snapshot) and channel features, built from [devices] and [buses] (fieldbus.py)."""
