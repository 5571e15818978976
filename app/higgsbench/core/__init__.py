"""What a run is: its configuration (config.RunConfig) and the checks of it, the network,
the optimizers and schedules (recipes), the physics metrics, and the hardware it runs on."""
