"""The sealbox client side: request signing today; the SDK (``sealbox.Client``) builds on it."""
