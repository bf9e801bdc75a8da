"""``exosphere demo``: the financial-reports pipeline end to end on embedded defaults."""
