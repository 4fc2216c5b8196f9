"""Tests of appliance/field/."""
