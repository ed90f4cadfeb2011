"""Route modules; each is thin: parse, call a crm service, shape the answer."""
