from pixelgate.cli import app

app(prog_name="pixelgate")
