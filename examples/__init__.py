"""The example configs, shipped inside the hubcard wheel as `hubcard.example_configs` (for `hubcard init`)."""
