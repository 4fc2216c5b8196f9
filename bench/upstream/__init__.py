"""The upstream side of sync: a receiver that records every batch and checks for loss and duplicates."""
