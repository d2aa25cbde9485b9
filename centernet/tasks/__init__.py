"""Tasks: what the network predicts and how it is trained, decoded, evaluated and drawn."""
