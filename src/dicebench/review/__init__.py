"""What a reviewer needs to check a run: one checksummed results bundle (`bundle`), a rerun of
a cell compared with it (`verify`), and pages to scroll through the predictions (`viewer`)."""
