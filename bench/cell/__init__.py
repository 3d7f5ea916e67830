"""One cell's own process: plan on the meta device, load, train, measure, write the record."""
