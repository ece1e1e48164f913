"""Ratings (好差评) of every closed service case and the service-quality indicators (质效监测)."""
