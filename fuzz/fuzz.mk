# fuzz.mk: the fuzz targets' build and run rules (included by the Makefile).
.PHONY: fuzz
fuzz:
	@echo "fuzz: no targets yet"
