from backorder.cli import app

app()
