"""A note's road: intake, the transcription queue and its lifecycle, spoken titles, filing."""
