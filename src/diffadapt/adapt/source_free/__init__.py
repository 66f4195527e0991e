"""Source-free adaptation: methods that adapt a trained classifier with target images alone (SHOT)."""
