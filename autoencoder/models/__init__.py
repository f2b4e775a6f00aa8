"""Networks, corruptions and the LightningModule that trains them."""
