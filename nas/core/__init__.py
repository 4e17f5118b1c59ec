"""What every layer shares: strict registries by name, and the rules that validate plain-data specs."""
