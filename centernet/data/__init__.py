"""CenterNet data: datasets, transforms, collate and the LightningDataModule."""
