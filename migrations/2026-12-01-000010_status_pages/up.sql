-- Public status pages: an owner publishes some of their sites at /status/{slug}.
-- Everything a page shows (and its badges and signed records) comes only from the
-- sites listed here, so a site nobody published stays private.

CREATE TABLE status_pages (
    id          BIGSERIAL PRIMARY KEY,
    owner_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Lower-case letters, digits and inner hyphens, 3 to 64 (checked by the API too).
    slug        TEXT NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9]([a-z0-9-]{1,62})[a-z0-9]$'),
    title       TEXT NOT NULL CHECK (char_length(title) BETWEEN 1 AND 100),
    description TEXT CHECK (char_length(description) <= 1000),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX status_pages_owner_idx ON status_pages (owner_id);

-- The sites of a page, in the order shown (at most 50 a page, checked by the API).
CREATE TABLE status_page_sites (
    page_id    BIGINT NOT NULL REFERENCES status_pages (id) ON DELETE CASCADE,
    website_id BIGINT NOT NULL REFERENCES websites (id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    PRIMARY KEY (page_id, website_id)
);
-- Alerts look up the page of a site.
CREATE INDEX status_page_sites_website_idx ON status_page_sites (website_id);
