"""Offline demo news site (feeds + article pages) and the loopback server that serves it."""
