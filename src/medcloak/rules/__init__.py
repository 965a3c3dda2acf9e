"""The rule layer: the PS3.15 tables as data, profiles with options and site overrides."""
