"""Pure decision code for the microgrid: policy, greedy dispatch, DP planner, load balancer."""
