"""The 12345 hotline (12345 热线): citizens' tickets, their classification and routing."""
