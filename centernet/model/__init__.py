"""CenterNet model: backbones, necks, heads, criterion and the assembly."""
