"""Tests of appliance/ops/."""
