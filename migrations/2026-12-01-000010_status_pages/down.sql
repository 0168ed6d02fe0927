DROP TABLE status_page_sites;
DROP TABLE status_pages;
