"""The tokens domain: any TransformerLens model on token sequences (verify.tokens.data), generic claims (verify.tokens.findings)."""
