from tunegit.cli import main_entry

main_entry()
