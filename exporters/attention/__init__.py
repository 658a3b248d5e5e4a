"""Attention mechanisms as documented ``nn.Module``s, one file per paper."""
