"""`higgsbench bench`: the plan of a sweep, the runner of its child runs, their summary into
bench.json and bench.md, the scaling model, and the plots."""
