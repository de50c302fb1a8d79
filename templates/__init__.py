"""The model-card templates, shipped inside the hubcard wheel as `hubcard.templates`."""
