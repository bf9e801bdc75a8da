"""Cost: the price table, a step's cost, the plan's estimate per 1,000 items."""
