-- Which poster choice the creator picked (1 to encoder::layout::POSTER_CHOICES, published as
-- `poster-{n}.jpg`); 0: the encoder's own pick, `poster.jpg`. Keep identical to the other
-- backend's file but for the type.
ALTER TABLE videos ADD COLUMN poster INTEGER NOT NULL DEFAULT 0;
