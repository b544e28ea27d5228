"""Budget alerts: raised from the budget_variance mart (`evaluate`), delivered by webhook and email (`deliver`)."""
