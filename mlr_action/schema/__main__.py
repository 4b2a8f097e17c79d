from mlr_action.schema import main

main()
