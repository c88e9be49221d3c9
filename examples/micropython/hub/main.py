import hub

hub.run()
