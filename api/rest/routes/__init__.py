"""One router per resource; each is thin and talks only to the service facade."""
