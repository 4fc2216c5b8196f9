"""Camera quality control: a user's LiteRT model on camera frames, a decision policy, and evidence."""
