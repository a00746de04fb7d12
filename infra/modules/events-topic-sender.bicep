// The app identity's EventGrid Data Sender role on the lifecycle-notification topic (an Event Grid custom
// topic in this resource group), and the topic's endpoint for EVENTS_TOPIC_ENDPOINT. Part of the template,
// so the next `azd provision` keeps the grant instead of wiping a hand-made one.
param topicName string
@description('Principal id of the app identity (publishes with Entra ID: the topic needs no key).')
param appPrincipalId string

var eventGridDataSender = 'd5a91429-5739-47e2-a06b-3470a27159e7'

resource topic 'Microsoft.EventGrid/topics@2022-06-15' existing = {
  name: topicName
}

resource sender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(topic.id, appPrincipalId, eventGridDataSender)
  scope: topic
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventGridDataSender)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output endpoint string = topic.properties.endpoint
