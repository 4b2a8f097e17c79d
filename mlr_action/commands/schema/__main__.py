from mlr_action.commands.schema import main

main()
