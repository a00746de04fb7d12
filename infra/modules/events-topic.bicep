// A new Event Grid custom topic for the app's lifecycle notifications (Autotune.RunSucceeded, ...), with the
// app identity's EventGrid Data Sender role on it: notifications work after `azd up` with no manual step.
// (An existing topic is granted by events-topic-sender.bicep alone.)
param name string
param location string
param tags object = {}
@description('Principal id of the app identity (publishes with Entra ID: the topic needs no key).')
param appPrincipalId string

// EventGridSchema: what shared/notify.py sends (EventGridEvent). Local auth (keys) off: Entra ID only.
resource topic 'Microsoft.EventGrid/topics@2022-06-15' = {
  name: name
  location: location
  tags: tags
  properties: {
    //checkov:skip=CKV_AZURE_193: the Function App has no VNet, so it publishes over the public endpoint; publishing needs an Entra ID token with EventGrid Data Sender (local auth is off)
    //checkov:skip=CKV_AZURE_191: a topic identity is for delivering with managed identity; subscribers (Logic App, webhook) are the team's choice, made after deploy
    inputSchema: 'EventGridSchema'
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
  }
}

module sender 'events-topic-sender.bicep' = {
  name: 'events-topic-sender'
  params: {
    topicName: topic.name
    appPrincipalId: appPrincipalId
  }
}

output endpoint string = sender.outputs.endpoint
